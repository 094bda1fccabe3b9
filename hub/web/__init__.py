"""The operator console (docs/console.md): HTML pages rendered by the hub, our own small
CSS and JS, sessions by cookie. The pages are shells; their data comes from the JSON API,
which accepts the session cookie (plus a CSRF header on writes) as well as Bearer tokens.

Modules: ``settings`` ([console]), ``session`` (sign-in, cookie, lookup), ``csrf``
(synchronizer token, same-origin check), ``apiauth`` (the API's auth step), ``render``
(Jinja2, the security headers), ``views`` (the page handlers and routes), ``assets``
(static files).
"""
