"""The ``imgcaption`` command line (``pip install 'imgcaption-toolkit[cli]'``). Entry point: :data:`imgcaption_cli.main.cli`."""
