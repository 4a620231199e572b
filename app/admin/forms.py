"""Admin forms. Every one carries a CSRF token, buttons included (``ActionForm``)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileRequired
from wtforms import BooleanField, MultipleFileField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.vectors.records import LABEL_LENGTH


class LoginForm(FlaskForm):
    username = StringField("User", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class UploadForm(FlaskForm):
    files = MultipleFileField("Images or .zip archives",
                              validators=[FileRequired("Choose at least one file.")])
    label = StringField("Label for these images (optional)",
                        validators=[Length(max=LABEL_LENGTH)])
    label_from_folder = BooleanField("In .zip archives, label each image by its folder name")


class LabelForm(FlaskForm):
    label = StringField("Label", validators=[Length(max=LABEL_LENGTH)])


class ActionForm(FlaskForm):
    """A button that changes something: nothing but its CSRF token."""
