"""The review console: server-rendered pages (Jinja2), Vietnamese first and English, one small script."""
