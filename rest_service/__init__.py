"""rest_service: history store and API for cron jobs, queue messages and user memory."""
