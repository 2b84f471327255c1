"""HTTP in and out: the ASGI/FastAPI middleware (``asgi``) and the httpx hooks that carry
correlation in ``baggage`` on outgoing calls (``http_client``)."""
