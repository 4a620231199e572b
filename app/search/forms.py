"""The search form: one image file and how many results."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

K_CHOICES = [SelectChoice(str(k)) for k in (5, 10, 20, 50, 100)]


class SearchForm(FlaskForm):
    image = FileField("Photo to search with", validators=[FileRequired("Choose an image file.")])
    # Offered as a choice, validated like the API's k (app.search.query.parse_k), so a
    # hand-made request with k=3 works the same on both.
    k = SelectField("Results", choices=K_CHOICES, default="10", validate_choice=False)
