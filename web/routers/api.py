"""The JSON API for local-authority integrations (being built)."""

from fastapi import APIRouter

router = APIRouter()
