"""The admin's "add a source" form (with its CSRF token, like every admin form)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

LABEL_CHOICES = [
    SelectChoice("", "No label"),
    SelectChoice("folder", "The object's folder name"),
    SelectChoice("meta", "The object's user metadata"),
]


class SourceForm(FlaskForm):
    location = StringField(
        "Location (s3://BUCKET/PREFIX)", validators=[DataRequired(), Length(max=600)]
    )
    label_rule = SelectField("Labels", choices=LABEL_CHOICES, default="")
    label_meta = StringField(
        "Metadata name (x-amz-meta-NAME)", default="label", validators=[Length(max=64)]
    )
    endpoint = SelectField("S3 endpoint", choices=[SelectChoice("", "default")], default="")
