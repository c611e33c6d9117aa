"""Plot Palette's one-machine dev stack.

- ``palette.devstack.stack.DevStack``: SecantusDB, moto's S3 server and the
  Bedrock emulator as child processes on free ports, and the env for services.
- ``palette.devstack.services.start_services``: the four services as processes.
- ``palette.devstack.bedrock_emulator``: the Converse emulator (``main()`` is the
  ``palette-bedrock-emulator`` script); ``emulator_server.EmulatorServer`` runs it
  in a background thread; ``emulator_client.EmulatorControl`` drives its control API.
"""
