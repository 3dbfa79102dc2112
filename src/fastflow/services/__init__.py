"""One module per OS process; each has ``main(config)`` taking its validated configuration section."""
