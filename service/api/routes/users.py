"""Who am I; tokens: create (admins), list and revoke (your own; admins: anyone's)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from sqlalchemy.orm import Session

from service import crud
from service.api.deps import (
    AdminUser,
    AppState,
    CurrentUser,
    SessionDep,
    StateDep,
    TokenDigest,
    WriteSessionDep,
)
from service.api.routes.jobs import ERRORS
from service.core.errors import Forbidden
from service.core.security import Principal, hash_token
from service.models import ApiToken, User
from service.schemas import (
    ErrorBody,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    TokensPublic,
    UserPublic,
)

router = APIRouter(tags=["users"], responses={401: ERRORS[401], 422: ERRORS[422]})
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "Not an admin."}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such token (or not yours)."}}
#: Ids are 32-bit on PostgreSQL: a larger one is a 422 naming the field, not a driver error.
TokenId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The token's id (GET /tokens).")]


@router.get("/users/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    """The user the token belongs to."""
    return UserPublic(id=user.id, name=user.name, is_admin=user.is_admin)


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated,
             responses=FORBIDDEN)
def create_token(body: TokenCreate, _admin: AdminUser,
                 session: WriteSessionDep) -> TokenCreated:
    """Create a token (and the user if new); the token is shown only here."""
    user, token = crud.create_token(session, body.user, admin=body.admin, label=body.label)
    row = crud.find_token(session, None, token_hash=hash_token(token))
    return TokenCreated(id=row.id, user=user.name, is_admin=user.is_admin, token=token)


@router.get("/tokens", response_model=TokensPublic, responses=FORBIDDEN)
def list_tokens(
    user: CurrentUser, session: SessionDep, digest: TokenDigest,
    all_users: Annotated[bool, Query(alias="all", description="Admins: every user's tokens.")]
    = False,
) -> TokensPublic:
    """Your tokens, live and revoked (never the token itself)."""
    if all_users and not user.is_admin:
        raise Forbidden("all=true needs an admin token")
    rows = crud.token_rows(session, None if all_users else user)
    data = [TokenPublic(id=r.id, user=r.user, label=r.label, created_at=r.created_at,
                        revoked_at=r.revoked_at, current=r.token_hash == digest) for r in rows]
    return TokensPublic(data=data, count=len(data))


@router.post("/tokens/current/revoke", response_model=TokenPublic)
def revoke_current_token(user: CurrentUser, session: WriteSessionDep, state: StateDep,
                         digest: TokenDigest) -> TokenPublic:
    """Revoke the token this request is made with (sign out for good): it gets 401 from
    now on."""
    token = crud.find_token(session, user, token_hash=digest)
    return _revoke(session, state, token, user, digest)


@router.post("/tokens/{token_id}/revoke", response_model=TokenPublic, responses=NOT_FOUND)
def revoke_token(token_id: TokenId, user: CurrentUser, session: WriteSessionDep,
                 state: StateDep, digest: TokenDigest) -> TokenPublic:
    """Revoke one of your tokens (admins: anyone's); it gets 401 from now on. Revoking a
    revoked token changes nothing."""
    token = crud.find_token(session, user, token_id=token_id)
    return _revoke(session, state, token, user, digest)


def _revoke(session: Session, state: AppState, token: ApiToken, user: Principal,
            digest: str | None) -> TokenPublic:
    crud.revoke_token(session, token)
    state.auth_cache.evict(token.token_hash)  # at once in this process, cache or not
    owner = session.get(User, token.user_id)
    return TokenPublic(id=token.id, user=owner.name if owner else "?", label=token.label,
                       created_at=token.created_at, revoked_at=token.revoked_at,
                       current=token.token_hash == digest)
