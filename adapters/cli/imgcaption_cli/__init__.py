"""The ``imgcaption`` command line (``pip install imgcaption[cli]``). Entry point: :data:`imgcaption_cli.main.cli`."""
