"""The operator console (docs/console.md): HTML pages rendered by the hub, our own small
CSS and JS, sessions by cookie. The pages are shells; their data comes from the JSON API,
which accepts the session cookie (plus a CSRF header on writes) as well as Bearer tokens.

Modules: ``session`` (people's and tokens' sessions, cookies, lookup), ``signin`` (the
sign-in and setup pages: passwords, lockout, tokens), ``throttle`` (failed sign-ins per
address, name and token), ``csrf`` (synchronizer token, same-origin check, the forms before
a session), ``apiauth`` (the API's auth step), ``render`` (Jinja2, the security headers),
``responses`` (pages, redirects, forms), ``views`` (the page handlers and routes),
``assets`` (static files).
"""
