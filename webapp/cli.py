"""Command-line tools: `flask --app webapp create-owner`, `create-api-key`, and job commands."""

from __future__ import annotations

import click
from flask import Flask

from .models import KEY_SCOPES


def register_cli(app: Flask) -> None:
    @app.cli.command("create-api-key")
    @click.option("--scope", type=click.Choice(KEY_SCOPES), required=True)
    @click.option("--project", "project_name", default="Default", show_default=True,
                  help="Project name; created when missing.")
    @click.option("--name", default="", help="A label to recognise the key by.")
    @click.option("--user", "user_email", default=None,
                  help="Act as this account: it must be an owner of the project.")
    def create_api_key_command(scope: str, project_name: str, name: str, user_email: str | None):
        """Create an API key and print it (shown once) on the last line."""
        from sqlalchemy import select

        from .accounts.models import Project as _Project
        from .accounts.models import User, role_allows
        from .accounts.service import membership
        from .api.auth import create_api_key
        from .extensions import db
        from .jobs.service import ensure_project

        if user_email is not None:
            # Shell access to the server is operator access; --user applies a person's role.
            user = db.session.scalar(select(User).where(User.email == user_email.strip().lower()))
            if user is None:
                raise click.ClickException(f"No account {user_email}.")
            project = db.session.scalar(select(_Project).where(_Project.name == project_name))
            member = membership(user, project.id) if project is not None else None
            if member is None or not role_allows(member.role, "owner"):
                raise click.ClickException(
                    f"{user_email} is not an owner of {project_name!r}: only owners create keys."
                )
        project = ensure_project(project_name)
        key, secret = create_api_key(project, scope, name)
        click.echo(f"Created {key.public_id} ({scope}) for project {project.name!r}.", err=True)
        click.echo("Store it now: it is shown only once.", err=True)
        click.echo(secret)

    @app.cli.command("create-owner")
    @click.option("--email", prompt=True, help="The owner's email address (their sign-in).")
    @click.option("--name", default="", help="The owner's name, as the dashboard shows it.")
    @click.option("--project", "project_name", default="Default", show_default=True,
                  help="The first project's name.")
    @click.password_option(help="Asked for when not given (10 characters or more).")
    def create_owner_command(email: str, name: str, project_name: str, password: str):
        """Create the first account, the owner, as /setup does (without its setup token:
        shell access to the server is operator access)."""
        from .accounts.service import create_owner
        from .errors import ServiceError, ValidationError

        try:
            user = create_owner(email, password, name, project_name.strip() or "Default")
        except ValidationError as exc:
            raise click.ClickException(" ".join(exc.errors.values())) from None
        except ServiceError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"Created the owner account {user.email}: sign in at /login.")

    @app.cli.command("run-job")
    @click.argument("job_id")
    def run_job_command(job_id: str):
        """Queue a run of a job now (as "Run now" does)."""
        from .errors import ServiceError
        from .extensions import db
        from .jobs.service import run_now
        from .models import Job

        job = db.session.query(Job).filter_by(public_id=job_id).first()
        if job is None:
            raise click.ClickException(f"No job {job_id}.")
        try:
            run = run_now(job, trigger="manual")
        except ServiceError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(run.public_id)
