"""Data access for rest_service: plain async functions over a ``Database``.

Routes and the admin pages (issue 7) call these; nothing here knows about HTTP.
"""
