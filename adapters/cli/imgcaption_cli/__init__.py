"""The ``imgcaption`` command line (the ``cli`` extra). Entry point: :data:`imgcaption_cli.main.cli`."""
