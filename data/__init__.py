"""The course's data files, shipped inside the package as ``eda_lab.data``.

This folder is the source: read and edit the CSV and JSON files here. pyproject.toml maps it
onto the package ``eda_lab.data``, so every install of eda_lab (a wheel, ``pip install .``,
an editable install) carries these files; this file only makes the folder a package.
``eda_lab.data_files.data_file(name)`` finds them.
"""
