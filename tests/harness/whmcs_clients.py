"""The WHMCS stand-in's client actions: client details, updates and e-mail.
Mixed into `WhmcsStandIn` (tests/harness/whmcs.py)."""

from __future__ import annotations

from tests.harness.whmcs_base import StandInBase
from tests.harness.whmcs_state import (
    CURRENCIES,
    Client,
    Email,
    Json,
    Params,
    Refused,
    money,
    number,
    truthy,
)


class ClientsMixin(StandInBase):
    """GetClientsDetails, UpdateClient, SendEmail."""

    # -- clients (getclientsdetails.md, updateclient.md, sendemail.md) ----------------------

    def _client_json(self, client: Client) -> Json:
        return {
            "client_id": client.id, "userid": client.id, "id": client.id,
            "firstname": client.firstname, "lastname": client.lastname,
            "fullname": f"{client.firstname} {client.lastname}",
            "companyname": client.companyname, "email": client.email,
            "address1": client.address1, "city": client.city,
            "state": client.state, "fullstate": client.state, "postcode": client.postcode,
            "countrycode": client.country, "country": client.country,
            "phonenumber": client.phonenumber, "status": client.status,
            "email_preferences": {k: str(int(v)) for k, v in client.email_preferences.items()},
            "currency": client.currency, "currency_code": CURRENCIES[client.currency],
            "credit": money(client.credit), "language": client.language,
            "marketing_emails_opt_in": client.marketing_opt_in,
        }  # fmt: skip

    def _a_getclientsdetails(self, params: Params) -> Json:
        # The reference also repeats the client at the top level (deprecated): left out here.
        if not params.get("clientid") and not params.get("email"):
            raise Refused("Either clientid Or email Is Required")
        email = str(params.get("email") or "").lower()
        found = [
            c
            for c in self.clients.values()
            if c.id == number(params, "clientid") or (email and c.email.lower() == email)
        ]
        if not found:
            raise Refused("Client Not Found")
        return {"client": self._client_json(found[0])}

    def _a_updateclient(self, params: Params) -> Json:
        client = self._client(params)
        email = params.get("email")
        if email and any(c.email == email and c.id != client.id for c in self.clients.values()):
            raise Refused("Duplicate Email Address")
        for name in ("firstname", "lastname", "companyname", "email", "address1", "city"):
            if name in params:
                setattr(client, name, str(params[name]))
        for name in ("country", "phonenumber", "language", "state", "postcode"):
            if name in params:
                setattr(client, name, str(params[name]))
        for kind, value in dict(params.get("email_preferences") or {}).items():
            client.email_preferences[kind] = truthy(value)
        if "marketingoptin" in params:
            client.marketing_opt_in = truthy(params["marketingoptin"])
        return {"clientid": str(client.id)}

    def _a_sendemail(self, params: Params) -> Json:
        # Only custom messages are modelled; a named template is recorded by its name.
        kind = str(params.get("customtype") or "")
        if not params.get("messagename") and not kind:
            raise Refused(
                "You must provide either an existing email template name or a custom message type"
            )
        if kind and kind not in {"general", "product", "domain", "invoice", "support", "affiliate"}:
            raise Refused("Invalid message type provided")
        if kind and not params.get("customsubject"):
            raise Refused("A subject is required for a custom message")
        if kind and not params.get("custommessage"):
            raise Refused("A message body is required for a custom message")
        if not params.get("id"):
            raise Refused("A related ID is required")
        if kind in ("general", "") and number(params, "id") not in self.clients:
            raise Refused("Sending Failed. Please see documentation.")
        subject = str(params.get("customsubject") or params.get("messagename"))
        self.emails.append(
            Email(number(params, "id"), kind, subject, str(params.get("custommessage") or ""))
        )
        return {}
