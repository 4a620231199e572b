"""Forms of the galleries pages, each with a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length, Regexp

from app.galleries.registry import MODEL_LENGTH, NAME, TITLE_LENGTH


class CreateForm(FlaskForm):
    name = StringField(
        "Name (in URLs)",
        validators=[
            DataRequired(),
            Regexp(
                f"^{NAME.pattern}$",
                message="Use 1 to 40 lower-case letters, "
                "digits and hyphens, starting with a letter or digit.",
            ),
        ],
    )
    title = StringField("Title", validators=[Length(max=TITLE_LENGTH)])
    model = StringField(
        "Model (hub id or model folder; empty: LOOKALIKE_MODEL)",
        validators=[Length(max=MODEL_LENGTH)],
    )


class TitleForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=TITLE_LENGTH)])
