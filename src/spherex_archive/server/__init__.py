"""The archive's HTTP server: the application (``app.create_app``), what every request goes
through (``middleware``), metrics, the landing page, and the DALI helpers the protocol modules
share (``dali``)."""
