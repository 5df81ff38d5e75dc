#!/usr/bin/env python3
"""Entry point of the ``cdk`` CLI (see cdk.json): ``cdk synth``, ``cdk deploy``."""

from imgcaption_cdk.app import main

main()
