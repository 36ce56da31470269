"""The HTTP face of `drift-local serve` (needs the `serve` extra: FastAPI, uvicorn, sse-starlette)."""
