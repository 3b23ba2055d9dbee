"""The box's run time: responder, app, builder, run, systemd notify, check."""
