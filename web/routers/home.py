"""The signed-in home page: one section for each role the person holds."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from agencies.models import Role
from meetings.access import require
from web.deps import SignedIn, render

router = APIRouter()

# The order sections appear in when someone holds several roles.
SECTION_ORDER = (
    Role.admin,
    Role.eip,
    Role.coordinator,
    Role.agency_rep,
    Role.school_referrer,
    Role.data_protection_officer,
)


@router.get("/")
def home(request: Request, viewer: SignedIn) -> Response:
    require(viewer, "home.view")
    sections = [role.value for role in SECTION_ORDER if role in viewer.roles]
    return render(request, "home/index.html", sections=sections)
