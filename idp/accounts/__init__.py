"""Accounts people run themselves: sign-up, verification, reset, invitations, the account page.
The rules live here, free of HTTP; ``idp.web`` handlers are thin over them."""
