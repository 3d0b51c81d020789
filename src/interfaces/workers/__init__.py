"""The worker process: claims tasks and runs them; never imports the web stack."""
