"""The device agent (``lightsearch device-agent``): measures ONNX models for the service.

Light on purpose: httpx, numpy and ONNX Runtime only; it never imports torch, Ray,
SQLAlchemy or FastAPI, so it runs on a Raspberry Pi or a phone's Linux shell. A device that
should not install the package's dependencies runs it as one file (``bundle.py``).
"""
