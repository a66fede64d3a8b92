"""Second factors: an authenticator app (TOTP, RFC 6238) and recovery codes. The rules live
here, free of HTTP; the account page enrols them and the sign-in asks for them."""
