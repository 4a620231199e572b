"""Lookalike's trainer: metric-learning fine-tuning, evaluation, export and indexing.

A separate program from the web app (``python -m trainer ...``) that shares the
app's encoder, preprocessing, export format and vector store instead of copying
them, so an offline number is the number a user of the app gets.
"""
