"""Accounts, memberships, invitations and projects: one copy of every rule."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager
from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import ConflictError, NotFoundError, ServiceError, ValidationError
from ..extensions import db
from ..models import Project
from ..timeutil import now
from .models import ROLES, Invitation, Membership, User

MIN_PASSWORD = 10
INVITATION_LIFETIME = timedelta(days=7)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Checked against when an email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a real password")


def hash_password(password: str) -> str:
    """scrypt, werkzeug's current default, with a random salt."""
    return generate_password_hash(password, method="scrypt")


def has_users() -> bool:
    return db.session.scalar(select(select(User.id).limit(1).exists())) or False


def _clean_account(email, password, name) -> tuple[str, str, str]:
    errors: dict[str, str] = {}
    email = (email or "").strip().lower() if isinstance(email, str) else ""
    if not _EMAIL.match(email) or len(email) > 254:
        errors["email"] = "Enter an email address such as ana@example.com."
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        errors["password"] = f"Use a password of at least {MIN_PASSWORD} characters."
    elif len(password) > 1024:
        errors["password"] = "That password is too long (1024 characters at most)."
    name = name.strip()[:100] if isinstance(name, str) else ""
    if errors:
        raise ValidationError(errors)
    return email, password, name


def setup_token(secret_key: str) -> str:
    """The token a public install's set-up page asks for, printed in the web's log.

    Derived from SECRET_KEY, so every web process and machine prints and accepts the same
    one with nothing stored; it is good once, as set-up closes when the owner exists, and
    it gives no more than SECRET_KEY itself (which signs every session) already does.
    """
    return hmac.new(secret_key.encode(), b"bytestack-jobs setup token", "sha256").hexdigest()[:32]


def setup_token_matches(secret_key: str, given) -> bool:
    return isinstance(given, str) and hmac.compare_digest(
        given.strip().encode(), setup_token(secret_key).encode()
    )


def create_owner(email, password, name="", project_name="Default") -> User:
    """The first account of a fresh install; refused once any account exists."""
    if has_users():
        raise ConflictError("This install already has an owner: sign in instead.")
    email, password, name = _clean_account(email, password, name)
    user = User(email=email, name=name, password_hash=hash_password(password))
    db.session.add(user)
    project = db.session.scalar(select(Project).order_by(Project.id).limit(1))
    if project is None:
        project = Project(name=project_name)
        db.session.add(project)
    db.session.flush()
    db.session.add(Membership(user_id=user.id, project_id=project.id, role="owner"))
    db.session.commit()
    return user


def authenticate(email, password) -> User | None:
    if not isinstance(email, str) or not isinstance(password, str):
        return None
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    user.last_login_at = now()
    db.session.commit()
    return user


def change_password(user: User, current, new) -> None:
    if not isinstance(current, str) or not check_password_hash(user.password_hash, current):
        raise ValidationError({"current_password": "That is not your current password."})
    _clean_account(user.email, new, user.name)
    user.password_hash = hash_password(new)
    end_sessions(user)  # the view signs this session in again


def end_sessions(user: User) -> None:
    """Sign the person out everywhere: the token is part of every session and remember-me
    cookie they hold (User.get_id), so each copy of one stops matching."""
    user.session_token = secrets.token_urlsafe(32)
    db.session.commit()


def membership(user: User, project_id: int) -> Membership | None:
    return db.session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.project_id == project_id)
    )


def memberships_of(user: User) -> list[Membership]:
    return list(
        db.session.scalars(
            select(Membership)
            .join(Project)
            .options(contains_eager(Membership.project))  # pages show it: no query per row
            .where(Membership.user_id == user.id)
            .order_by(Project.name)
        )
    )


def members_of(project: Project) -> list[Membership]:
    return list(
        db.session.scalars(
            select(Membership)
            .join(User)
            .options(contains_eager(Membership.user))  # pages show it: no query per row
            .where(Membership.project_id == project.id)
            .order_by(User.email)
        )
    )


def _clean_project_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": "Give the project a name."})
    if len(name.strip()) > 100:
        raise ValidationError({"name": "A project name can be at most 100 characters."})
    return name.strip()


def create_project(user: User, name) -> Project:
    project = Project(name=_clean_project_name(name))
    db.session.add(project)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ValidationError({"name": "A project with this name already exists."}) from None
    db.session.add(Membership(user_id=user.id, project_id=project.id, role="owner"))
    db.session.commit()
    return project


def rename_project(project: Project, name) -> Project:
    project.name = _clean_project_name(name)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationError({"name": "A project with this name already exists."}) from None
    return project


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_invitation(project: Project, role, by: User | None) -> tuple[Invitation, str]:
    """A one-time invitation; the token is returned once and only its hash is stored."""
    if role not in ROLES:
        raise ValidationError({"role": "Choose a role: viewer, editor or owner."})
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        project_id=project.id,
        role=role,
        token_hash=_token_hash(token),
        created_by_id=by.id if by else None,
        expires_at=now() + INVITATION_LIFETIME,
    )
    db.session.add(invitation)
    db.session.commit()
    return invitation, token


def open_invitation(token: str) -> Invitation:
    invitation = db.session.scalar(
        select(Invitation).where(Invitation.token_hash == _token_hash(token or ""))
    )
    if invitation is None or not invitation.is_open:
        raise NotFoundError("This invitation link is not valid: it was used, revoked or expired.")
    return invitation


def accept_invitation(token: str, user: User) -> Membership:
    invitation = open_invitation(token)
    existing = membership(user, invitation.project_id)
    if existing is not None:
        # Accepting never lowers a role someone already has.
        if ROLES.index(invitation.role) > ROLES.index(existing.role):
            existing.role = invitation.role
        result = existing
    else:
        result = Membership(user_id=user.id, project_id=invitation.project_id, role=invitation.role)
        db.session.add(result)
    invitation.accepted_at = now()
    invitation.accepted_by_id = user.id
    db.session.commit()
    return result


def register_with_invitation(token: str, email, password, name="") -> User:
    open_invitation(token)
    email, password, name = _clean_account(email, password, name)
    if db.session.scalar(select(User).where(User.email == email)) is not None:
        raise ValidationError({"email": "An account with this email exists: sign in to accept."})
    user = User(email=email, name=name, password_hash=hash_password(password))
    db.session.add(user)
    db.session.flush()
    accept_invitation(token, user)
    return user


def revoke_invitation(project: Project, public_id: str) -> None:
    invitation = db.session.scalar(
        select(Invitation).where(
            Invitation.public_id == public_id, Invitation.project_id == project.id
        )
    )
    if invitation is None:
        raise NotFoundError("No such invitation in this project.")
    invitation.revoked_at = now()
    db.session.commit()


def open_invitations(project: Project) -> list[Invitation]:
    return [
        invitation
        for invitation in db.session.scalars(
            select(Invitation)
            .where(Invitation.project_id == project.id, Invitation.accepted_at.is_(None))
            .order_by(Invitation.id.desc())
        )
        if invitation.is_open
    ]


def _owners(project_id: int) -> int:
    return db.session.scalar(
        select(func.count(Membership.id)).where(
            Membership.project_id == project_id, Membership.role == "owner"
        )
    )


def _member(project: Project, user_public_id: str) -> Membership:
    found = db.session.scalar(
        select(Membership)
        .join(User)
        .where(Membership.project_id == project.id, User.public_id == user_public_id)
    )
    if found is None:
        raise NotFoundError("No such member in this project.")
    return found


def set_role(project: Project, user_public_id: str, role) -> Membership:
    if role not in ROLES:
        raise ValidationError({"role": "Choose a role: viewer, editor or owner."})
    member = _member(project, user_public_id)
    if member.role == "owner" and role != "owner" and _owners(project.id) == 1:
        raise ServiceError("A project keeps at least one owner: make someone else owner first.")
    member.role = role
    db.session.commit()
    return member


def remove_member(project: Project, user_public_id: str) -> None:
    member = _member(project, user_public_id)
    if member.role == "owner" and _owners(project.id) == 1:
        raise ServiceError("A project keeps at least one owner: make someone else owner first.")
    db.session.delete(member)
    db.session.commit()
