"""Who am I, and tokens for new users (admins only)."""

from __future__ import annotations

from fastapi import APIRouter, status

from service import crud
from service.api.deps import AdminUser, CurrentUser, WriteSessionDep
from service.api.routes.jobs import ERRORS
from service.schemas import ErrorBody, TokenCreate, TokenCreated, UserPublic

router = APIRouter(tags=["users"], responses={401: ERRORS[401], 422: ERRORS[422]})


@router.get("/users/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    """The user the token belongs to."""
    return UserPublic(id=user.id, name=user.name, is_admin=user.is_admin)


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated,
             responses={403: {"model": ErrorBody, "description": "Not an admin."}})
def create_token(body: TokenCreate, _admin: AdminUser,
                 session: WriteSessionDep) -> TokenCreated:
    """Create a token (and the user if new); the token is shown only here."""
    user, token = crud.create_token(session, body.user, admin=body.admin, label=body.label)
    return TokenCreated(user=user.name, is_admin=user.is_admin, token=token)
