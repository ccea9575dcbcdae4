"""`/api/users/me`: register the caller."""

from fastapi import APIRouter, Request

from ingest_api.auth import Caller
from ingest_api.commands import command_id, execute, now
from ingest_api.errors import not_found
from ingest_api.models import Registration
from state.user import RegisterUser

router = APIRouter(prefix="/api/users", tags=["users"])


@router.post("/me", status_code=201)
async def register(request: Request, actor: Caller, body: Registration | None = None):
    """Register the caller with the role in its token (idempotent); emits `UserCreated`."""
    command = RegisterUser(command_id=command_id(request, actor), now=now(), actor=actor,
                           user_id=actor.user_id, account_type=actor.role, email=body.email if body else None)
    return await execute(request, "user", actor.user_id, command, 201)


@router.get("/me")
async def me(request: Request, actor: Caller):
    """The caller as registered."""
    row = await request.app.state.reads.one("SELECT * FROM users WHERE user_id = %s", actor.user_id)
    if row is None:
        raise not_found("user")
    return {"userId": row["user_id"], "accountType": row["account_type"], "email": row["email"],
            "createdAt": row["created_at"].isoformat() if row["created_at"] else None}
