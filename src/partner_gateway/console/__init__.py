"""The partner console: the company's traffic in a browser, served by every API process at /console/.

Server-rendered pages (Jinja2) and small plain scripts, no build step. It calls the functions the
API's handlers call and the store's repositories, never the API over HTTP (docs/console.md).
"""
