"""Dashboard → Settings: General, API Keys, Members, Webhooks, Sources and Storage (owners
only)."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from ..accounts import service as accounts
from ..accounts.access import requires
from ..accounts.models import ROLES
from ..errors import ConflictError, NotFoundError, ServiceError, ValidationError
from ..extensions import htmx
from ..models import KEY_SCOPES
from ..projects import current_project
from ..sources import SOURCE_TYPES, list_sources
from ..storage import bucket as buckets
from ..storage import retention
from . import channels, credentials, keys, webhooks
from .models import WEBHOOK_EVENTS

bp = Blueprint("settings", __name__, url_prefix="/settings")

# (template, endpoint, label) of each section, in the order of the section nav.
SECTIONS = (
    ("general", "settings.general", "General"),
    ("api_keys", "settings.api_keys", "API Keys"),
    ("members", "settings.members", "Members"),
    ("webhooks", "settings.webhooks_page", "Webhooks"),
    ("channels", "settings.channels_page", "Channels"),
    ("sources", "settings.sources_page", "Sources"),
    ("storage", "settings.storage_page", "Storage"),
)
SECTION_PAGES = {key: endpoint for key, endpoint, _ in SECTIONS}


def _page(template: str, status: int = 200, revealed: dict | None = None, **context):
    """Render a settings page; a page revealing a secret is never stored by a browser cache."""
    response = make_response(
        render_template(
            f"settings/{template}.html",
            sections=SECTIONS,
            section=template,
            project=current_project(),
            revealed=revealed,
            errors=context.pop("errors", {}),
            **context,
        ),
        status,
    )
    if revealed is not None:
        response.headers["Cache-Control"] = "no-store"
    if htmx and request.method == "POST":
        # A form answered in place (an error, or a secret shown once) may have posted to a URL
        # of its own, such as /settings/invitations: the address bar shows the section's page.
        response.headers["HX-Push-Url"] = url_for(SECTION_PAGES[template])
    return response



# --- General ------------------------------------------------------------------------------


@bp.get("")
@requires("owner")
def index():
    """Settings open on General."""
    return redirect(url_for("settings.general"))


@bp.get("/general")
@requires("owner")
def general():
    """The project's name."""
    return _page("general", values={"name": current_project().name})


@bp.post("/general")
@requires("owner")
def rename_project():
    """Rename the project."""
    name = request.form.get("name", "")
    try:
        project = accounts.rename_project(current_project(), name)
    except ValidationError as exc:
        return _page("general", 422, values={"name": name}, errors=exc.errors)
    flash(f"The project is now called {project.name}.")
    return redirect(url_for("settings.general"), 303)


# --- API keys -----------------------------------------------------------------------------


def _keys_page(status: int = 200, revealed: dict | None = None, **context):
    context.setdefault("values", {"name": "", "scope": "read"})
    return _page(
        "api_keys",
        status,
        revealed,
        keys=keys.list_keys(current_project()),
        scopes=KEY_SCOPES,
        **context,
    )


@bp.get("/api-keys")
@requires("owner")
def api_keys():
    """The project's API keys with their scope and last use."""
    return _keys_page()


@bp.post("/api-keys")
@requires("owner")
def create_api_key():
    """Create a key and show it this once."""
    values = {"name": request.form.get("name", ""), "scope": request.form.get("scope", "")}
    try:
        key, secret = keys.create_key(current_project(), values["name"], values["scope"])
    except ValidationError as exc:
        return _keys_page(422, values=values, errors=exc.errors)
    # Shown in this response only (no redirect): only the key's hash is kept, so no later
    # page could show it again.
    return _keys_page(
        200,
        revealed={
            "title": f"API key “{key.name}” ({key.scope})",
            "value": secret,
            "hint": "Copy it now: it is shown only this once. Send it as "
            "'Authorization: Bearer <key>'.",
        },
    )


@bp.post("/api-keys/<key_id>/revoke")
@requires("owner")
def revoke_api_key(key_id: str):
    """Revoke a key: it answers 401 from now on."""
    key = keys.revoke_key(keys.get_key(current_project(), key_id))
    flash(f"API key “{key.name}” ({key.prefix}…) is revoked.")
    return redirect(url_for("settings.api_keys"), 303)


# --- Members ------------------------------------------------------------------------------


def _members_page(status: int = 200, revealed: dict | None = None, **context):
    project = current_project()
    return _page(
        "members",
        status,
        revealed,
        members=accounts.members_of(project),
        invitations=accounts.open_invitations(project),
        roles=ROLES,
        row_errors=context.pop("row_errors", {}),
        **context,
    )


@bp.get("/members")
@requires("owner")
def members():
    """Members with their roles, and open invitations."""
    return _members_page()


@bp.post("/members/<user_id>/role")
@requires("owner")
def change_role(user_id: str):
    """Give a member another role."""
    try:
        member = accounts.set_role(current_project(), user_id, request.form.get("role"))
    except NotFoundError:
        raise  # the app's one 404 handler answers it; other refusals re-render the page
    except ServiceError as exc:
        return _members_page(422, row_errors={user_id: exc.message})
    flash(f"{member.user.email} is now {member.role}.")
    if member.user_id == current_user.id and member.role != "owner":
        # Settings are for owners: having stepped down, this person would only meet a 403.
        return redirect(url_for("jobs.list_jobs"), 303)
    return redirect(url_for("settings.members"), 303)


@bp.post("/members/<user_id>/remove")
@requires("owner")
def remove_member(user_id: str):
    """Remove a member from the project."""
    project = current_project()
    email = next(
        (m.user.email for m in accounts.members_of(project) if m.user.public_id == user_id), None
    )
    if email is None:
        abort(404)
    try:
        accounts.remove_member(project, user_id)
    except ServiceError as exc:
        return _members_page(422, row_errors={user_id: exc.message})
    flash(f"{email} was removed from {project.name}.")
    if user_id == current_user.public_id:
        return redirect(url_for("accounts.projects"), 303)
    return redirect(url_for("settings.members"), 303)


@bp.post("/invitations")
@requires("owner")
def create_invitation():
    """Create a one-time invitation link for a role and show it this once."""
    role = request.form.get("role", "")
    try:
        invitation, token = accounts.create_invitation(
            current_project(), role, current_user._get_current_object()
        )
    except ValidationError as exc:
        return _members_page(422, errors=exc.errors, invite_role=role)
    # Only the token's hash is stored, so this response is the one place the link exists.
    return _members_page(
        200,
        revealed={
            "title": f"Invitation link ({invitation.role})",
            "value": url_for("accounts.invitation", token=token, _external=True),
            "hint": "Send it to one person: it works once, expires in 7 days and is shown only "
            "this once.",
        },
    )


@bp.post("/invitations/<invitation_id>/revoke")
@requires("owner")
def revoke_invitation(invitation_id: str):
    """Revoke an open invitation."""
    accounts.revoke_invitation(current_project(), invitation_id)
    flash("The invitation is revoked; its link no longer works.")
    return redirect(url_for("settings.members"), 303)


# --- Webhooks -----------------------------------------------------------------------------


def _webhooks_page(status: int = 200, revealed: dict | None = None, **context):
    project = current_project()
    hooks = webhooks.list_webhooks(project)
    context.setdefault("values", {"url": "", "events": list(WEBHOOK_EVENTS)})
    response = _page(
        "webhooks",
        status,
        revealed,
        webhooks=hooks,
        events=WEBHOOK_EVENTS,
        deliveries={hook.id: webhooks.delivery_log(hook) for hook in hooks},
        job_urls=webhooks.job_url_logs(project),
        project_secret=webhooks.project_secret(project),
        **context,
    )
    # The project's secret is on the page: no browser cache keeps it.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/webhooks")
@requires("owner")
def webhooks_page():
    """The project's webhooks and their recent delivery attempts."""
    return _webhooks_page()


@bp.post("/webhooks")
@requires("owner")
def create_webhook():
    """Create a webhook and show its signing secret this once."""
    values = {"url": request.form.get("url", ""), "events": request.form.getlist("events")}
    try:
        webhook, secret = webhooks.create_webhook(
            current_project(), values["url"], values["events"]
        )
    except ValidationError as exc:
        return _webhooks_page(422, values=values, errors=exc.errors)
    return _webhooks_page(200, revealed=_secret_revealed(webhook.url, secret))


@bp.post("/webhooks/<webhook_id>/rotate")
@requires("owner")
def rotate_webhook(webhook_id: str):
    """Give a webhook a new secret and show it this once."""
    webhook = webhooks.get_webhook(current_project(), webhook_id)
    secret = webhooks.rotate_secret(webhook)
    return _webhooks_page(200, revealed=_secret_revealed(webhook.url, secret, rotated=True))


@bp.post("/webhooks/<webhook_id>/delete")
@requires("owner")
def delete_webhook(webhook_id: str):
    """Delete a webhook."""
    webhook = webhooks.get_webhook(current_project(), webhook_id)
    url = webhook.url
    webhooks.delete_webhook(webhook)
    flash(f"The webhook to {url} is deleted.")
    return redirect(url_for("settings.webhooks_page"), 303)


@bp.post("/webhooks/deliveries/<delivery_id>/resend")
@requires("owner")
def resend_webhook_delivery(delivery_id: str):
    """Send a webhook delivery again, now."""
    try:
        delivery = webhooks.resend_delivery(current_project(), delivery_id)
    except ConflictError as exc:
        flash(exc.message)
    else:
        flash(f"Delivery {delivery.public_id} ({delivery.event}) is sent again within seconds.")
    return redirect(url_for("settings.webhooks_page"), 303)


@bp.post("/webhooks/project-secret/rotate")
@requires("owner")
def rotate_project_webhook_secret():
    """Give the project a new secret for signing what jobs' own webhook URLs receive."""
    webhooks.rotate_project_secret(current_project())
    flash("The project has a new signing secret: jobs' webhook URLs are signed with it from now on.")
    return redirect(url_for("settings.webhooks_page"), 303)


def _secret_revealed(url: str, secret: str, rotated: bool = False) -> dict:
    return {
        "title": f"{'New signing' if rotated else 'Signing'} secret for {url}",
        "value": secret,
        "hint": "Copy it now: it is shown only this once. Each delivery carries "
        "X-ByteStack-Signature: sha256=<HMAC-SHA256 of the body with this secret>."
        + (" The old secret no longer signs deliveries." if rotated else ""),
    }


# --- Channels -----------------------------------------------------------------------------


def _channels_page(status: int = 200, **context):
    project = current_project()
    listed = channels.list_channels(project)
    context.setdefault("values", {"name": "", "url": ""})
    response = _page(
        "channels",
        status,
        channels=listed,
        masked={channel.id: channels.masked_url(channel) for channel in listed},
        services={channel.id: channels.service_name(channel) for channel in listed},
        users=channels.channel_users(project),
        row_errors=context.pop("row_errors", {}),
        **context,
    )
    # A refused URL is sent back to be corrected, secrets and all: no cache keeps it.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/channels")
@requires("owner")
def channels_page():
    """The project's alert channels (Apprise URLs, masked) with Send test."""
    return _channels_page()


@bp.post("/channels")
@requires("owner")
def create_channel():
    """Add a channel from an Apprise URL."""
    values = {"name": request.form.get("name", ""), "url": request.form.get("url", "")}
    try:
        channel = channels.create_channel(current_project(), values["name"], values["url"])
    except ValidationError as exc:
        return _channels_page(422, values=values, errors=exc.errors)
    flash(f"Channel “{channel.name}” is added. Send a test to check that it works, then choose "
          "it in a job's alerts.")
    return redirect(url_for("settings.channels_page"), 303)


@bp.post("/channels/<channel_id>/test")
@requires("owner")
def test_channel(channel_id: str):
    """Send a test message to a channel now."""
    channel = channels.get_channel(current_project(), channel_id)
    try:
        flash(channels.test_channel(channel))
    except ValidationError as exc:
        return _channels_page(422, row_errors={channel.public_id: exc.message})
    return redirect(url_for("settings.channels_page"), 303)


@bp.post("/channels/<channel_id>/delete")
@requires("owner")
def delete_channel(channel_id: str):
    """Delete a channel; jobs stop alerting there."""
    channel = channels.get_channel(current_project(), channel_id)
    name = channel.name
    channels.delete_channel(channel)
    flash(f"Channel “{name}” is deleted.")
    return redirect(url_for("settings.channels_page"), 303)


# --- Sources ------------------------------------------------------------------------------


def _sources_page(status: int = 200, **context):
    project = current_project()
    names = credentials.credential_names()
    used_by: dict[str, list[str]] = {name: [] for name in names}
    for source_id, cls in SOURCE_TYPES.items():
        for name in (*getattr(cls, "credentials", ()), *getattr(cls, "optional_credentials", ())):
            if name in used_by:
                used_by[name].append(getattr(cls, "name", None) or source_id)
    return _page(
        "sources",
        status,
        sources=list_sources(credentials.project_credentials(project.id)),
        credential_names=names,
        states=credentials.credential_states(project),
        in_environment=credentials.environment_credential_names(),
        used_by=used_by,
        **context,
    )


@bp.get("/sources")
@requires("owner")
def sources_page():
    """Each source's status, and the project's source credentials (never shown back)."""
    return _sources_page()


@bp.post("/sources/<name>")
@requires("owner")
def set_credential(name: str):
    """Store a source credential for this project, encrypted."""
    if name not in credentials.credential_names():
        abort(404)
    try:
        credentials.set_credential(current_project(), name, request.form.get("value", ""))
    except ValidationError as exc:
        return _sources_page(422, errors=exc.errors)
    except ConflictError as exc:
        flash(exc.message)
        return redirect(url_for("settings.sources_page"), 303)
    flash(f"{name} is set for this project.")
    return redirect(url_for("settings.sources_page"), 303)


@bp.post("/sources/<name>/clear")
@requires("owner")
def clear_credential(name: str):
    """Remove a stored source credential (the environment's, if any, applies again)."""
    if name not in credentials.credential_names():
        abort(404)
    if credentials.clear_credential(current_project(), name):
        flash(f"{name} is cleared for this project.")
    else:
        flash(f"{name} was not set for this project.")
    return redirect(url_for("settings.sources_page"), 303)


# --- Storage ------------------------------------------------------------------------------

BUCKET_FIELDS = ("endpoint", "region", "bucket", "prefix", "access_key")
RETENTION_FIELDS = ("days", "runs_per_job")


def _storage_page(status: int = 200, **context):
    project = current_project()
    bucket = buckets.get_bucket(project)
    if "values" not in context:
        # The form starts from the connected bucket (never its secret), to change one field.
        context["values"] = {
            name: (getattr(bucket, name) or "") if bucket else "" for name in BUCKET_FIELDS
        }
    context.setdefault(
        "policy",
        {name: getattr(project, f"retention_{name}") or "" for name in RETENTION_FIELDS},
    )
    return _page(
        "storage",
        status,
        bucket=bucket,
        usage=retention.usage(project),
        retention_errors=context.pop("retention_errors", {}),
        **context,
    )


@bp.get("/storage")
@requires("owner")
def storage_page():
    """What the project stores and how long it keeps runs; its own bucket."""
    return _storage_page()


@bp.post("/storage/retention")
@requires("owner")
def set_retention():
    """Change how long the project keeps its runs."""
    policy = {name: request.form.get(name, "") for name in RETENTION_FIELDS}
    try:
        retention.set_retention(current_project(), policy)
    except ValidationError as exc:
        return _storage_page(422, policy=policy, retention_errors=exc.errors)
    flash("The retention policy is saved. Runs it no longer keeps are deleted in the "
          "background, then hourly and after each run.")
    return redirect(url_for("settings.storage_page"), 303)


@bp.post("/storage/bucket")
@requires("owner")
def connect_bucket():
    """Connect (or change) the bucket, after a test write."""
    data = {name: request.form.get(name, "") for name in (*BUCKET_FIELDS, "secret_key")}
    try:
        bucket = buckets.connect_bucket(current_project(), data)
    except ValidationError as exc:
        values = {name: data[name] for name in BUCKET_FIELDS}  # the secret is never sent back
        return _storage_page(422, values=values, errors=exc.errors)
    flash(f"Bucket {bucket.bucket} is connected: the test write succeeded. Each completed run's "
          "results are pushed there from now on.")
    return redirect(url_for("settings.storage_page"), 303)


@bp.post("/storage/bucket/disconnect")
@requires("owner")
def disconnect_bucket():
    """Disconnect the bucket (what it holds stays there)."""
    if buckets.disconnect_bucket(current_project()):
        flash("The bucket is disconnected: no more results are pushed to it.")
    else:
        flash("No bucket was connected.")
    return redirect(url_for("settings.storage_page"), 303)
