"""Administration: directory, meeting series, term dates (pages arrive with their issues)."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from meetings.access import require
from web.deps import SignedIn, render

router = APIRouter(prefix="/admin")


@router.get("")
def admin_home(request: Request, viewer: SignedIn) -> Response:
    require(viewer, "admin.view")
    return render(request, "admin/index.html")
