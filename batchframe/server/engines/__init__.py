"""Engines of the local service: each answers a Messages request (see ``base.py``)."""

from .base import Completion, Engine, EngineError, engine_names, make_engine, register_engine

__all__ = ["Completion", "Engine", "EngineError", "engine_names", "make_engine", "register_engine"]
