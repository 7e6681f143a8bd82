"""The token login page, as a Bokeh/Panel auth module.

``panel serve app.py --plugins fraud_app.api --auth-module fraud_app/token_login.py``
(what ``make run`` does): when ``FRAUD_APP_API_TOKEN`` is set, the app asks for the token
on ``/login`` and keeps a signed ``SameSite=Lax`` cookie; without a token the app stays open.
A ``--basic-auth`` or OAuth login given as well takes precedence (Panel replaces this module).
"""

from fraud_app.auth import (
    LOGIN_URL,
    LOGOUT_URL,
    TokenLoginHandler,
    TokenLogoutHandler,
    get_user,
    mark_token_login_installed,
)

login_url = LOGIN_URL
logout_url = LOGOUT_URL
LoginHandler = TokenLoginHandler
LogoutHandler = TokenLogoutHandler

mark_token_login_installed()

__all__ = ["LoginHandler", "LogoutHandler", "get_user", "login_url", "logout_url"]
