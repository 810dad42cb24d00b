"""The device agent (``lightsearch device-agent``): measures ONNX models for the service.

Light on purpose: httpx, numpy and ONNX Runtime only (``pip install lightsearch[device]``);
it never imports torch, Ray, SQLAlchemy or FastAPI, so it runs on a Raspberry Pi or a phone's
Linux shell.
"""
