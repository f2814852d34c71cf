"""The WHMCS stand-in's support actions: departments, tickets, replies and notes.
Mixed into `WhmcsStandIn` (tests/harness/whmcs.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.harness.whmcs_base import StandInBase
from tests.harness.whmcs_state import (
    TICKET_STATUSES,
    Json,
    Params,
    Refused,
    Reply,
    Ticket,
    number,
    when,
)


class TicketsMixin(StandInBase):
    """GetSupportDepartments, OpenTicket, GetTickets, GetTicket, AddTicketReply, AddTicketNote,
    UpdateTicket."""

    # -- support (getsupportdepartments.md, openticket.md, gettickets.md, getticket.md, ...) --

    def _ticket(self, params: Params) -> Ticket:
        ticket = self.tickets.get(number(params, "ticketid"))
        if ticket is None and params.get("ticketnum"):
            ticket = next((t for t in self.tickets.values() if t.tid == params["ticketnum"]), None)
        if ticket is None:
            raise Refused("Ticket ID Not Found")  # GetTicket lists no errors: this one is ours
        return ticket

    def _ticket_json(self, ticket: Ticket) -> Json:
        return {
            "id": str(ticket.id), "tid": ticket.tid, "c": ticket.c, "deptid": str(ticket.deptid),
            "userid": str(ticket.userid), "subject": ticket.subject, "status": ticket.status,
            "priority": ticket.priority, "date": when(ticket.date),
            "lastreply": when(ticket.lastreply), "flag": "0", "service": "",
        }  # fmt: skip

    def _a_getsupportdepartments(self, params: Params) -> Json:
        rows = [
            {
                "id": str(dept_id),
                "name": name,
                "awaitingreply": str(
                    sum(
                        t.deptid == dept_id and t.status in ("Open", "Customer-Reply")
                        for t in self.tickets.values()
                    )
                ),
                "opentickets": str(
                    sum(t.deptid == dept_id and t.status != "Closed" for t in self.tickets.values())
                ),
            }
            for dept_id, name in self.departments.items()
        ]
        return {"totalresults": len(rows), "departments": {"department": rows} if rows else ""}

    def _a_openticket(self, params: Params) -> Json:
        if number(params, "deptid") not in self.departments:
            raise Refused("Department ID not found")
        if not params.get("subject"):
            raise Refused("Subject is required")
        if not params.get("message"):
            raise Refused("Message is required")
        if not params.get("clientid"):
            # Tickets from non-clients are not modelled.
            raise Refused("Name and email address are required if not a client")
        client = self._client(params)
        ticket = self.add_ticket(
            client, str(params["subject"]), str(params["message"]), number(params, "deptid")
        )
        ticket.priority = str(params.get("priority") or "Medium")
        ticket.date = ticket.replies[0].date = datetime.combine(self.today, datetime.min.time())
        return {"id": str(ticket.id), "tid": ticket.tid, "c": ticket.c}

    def _a_gettickets(self, params: Params) -> Json:
        # Status filters: any status, plus "Awaiting Reply" (Open, Customer-Reply) and
        # "All Active Tickets" (anything but Closed) — our reading of the reference.
        wanted = str(params.get("status") or "")
        groups = {
            "Awaiting Reply": {"Open", "Customer-Reply"},
            "All Active Tickets": set(TICKET_STATUSES) - {"Closed"},
        }
        statuses = groups.get(wanted, {wanted})
        rows = [
            self._ticket_json(t)
            for t in sorted(self.tickets.values(), key=lambda t: t.id, reverse=True)
            if (not params.get("clientid") or t.userid == number(params, "clientid"))
            and (not params.get("deptid") or t.deptid == number(params, "deptid"))
            and (not wanted or t.status in statuses)
        ]
        return self._page(params, rows, "tickets", "ticket", as_text=True)

    def _a_getticket(self, params: Params) -> Json:
        ticket = self._ticket(params)
        replies = [
            {
                "replyid": str(index),
                "userid": str(reply.userid),
                "contactid": "0",
                "name": reply.name if not reply.admin else "",
                "requestor_name": reply.admin or reply.name,
                "requestor_type": "Operator" if reply.admin else "Owner",
                "date": when(reply.date),
                "message": reply.message,
                "admin": reply.admin,
            }
            for index, reply in enumerate(ticket.replies)
        ]
        if params.get("repliessort", "ASC").upper() == "DESC":
            replies.reverse()
        notes = [
            {
                "noteid": str(index + 1), "date": when(note.date), "message": note.message,
                "attachment": "", "attachments_removed": False, "admin": note.admin,
            }
            for index, note in enumerate(ticket.notes)
        ]  # fmt: skip
        body = self._ticket_json(ticket)
        body["ticketid"] = body.pop("id")
        return body | {
            "deptname": self.departments[ticket.deptid],
            "replies": {"reply": replies},
            "notes": {"note": notes} if notes else "",
        }

    def _a_addticketreply(self, params: Params) -> Json:
        ticket = self.tickets.get(number(params, "ticketid"))
        if ticket is None:
            raise Refused("Ticket ID not found")  # sic: lower-case "not", as the reference
        if not params.get("message"):
            raise Refused("Message is required")
        admin = str(params.get("adminusername") or "")
        client = self._client(params) if params.get("clientid") else None
        if client is None and not admin:
            raise Refused("Name and email address are required if not a client")
        name = f"{client.firstname} {client.lastname}" if client else ""
        moment = max(
            datetime.combine(self.today, datetime.min.time()), ticket.lastreply
        ) + timedelta(minutes=1)
        ticket.replies.append(
            Reply(client.id if client else 0, admin, name, str(params["message"]), moment)
        )
        # The statuses after a reply are WHMCS's defaults (not in the reference).
        status = str(params.get("status") or ("Answered" if admin else "Customer-Reply"))
        if status not in TICKET_STATUSES:
            raise Refused("Invalid Ticket Status")
        ticket.status = status
        return {}

    def _a_addticketnote(self, params: Params) -> Json:
        """addticketnote.md: by ticketid or ticketnum; the answer is bare success. The note's
        admin is the API user's (not in the request): "API" here."""
        ticket = self.tickets.get(number(params, "ticketid"))
        if ticket is None and params.get("ticketnum"):
            ticket = next((t for t in self.tickets.values() if t.tid == params["ticketnum"]), None)
        if ticket is None:
            raise Refused("Ticket ID not found")
        if not params.get("message"):
            raise Refused("Message is required")
        moment = datetime.combine(self.today, datetime.min.time())
        ticket.notes.append(Reply(0, "API", "", str(params["message"]), moment))
        return {}

    def _a_updateticket(self, params: Params) -> Json:
        ticket = self.tickets.get(number(params, "ticketid"))
        if ticket is None:
            raise Refused("Ticket ID Not Found")
        status = params.get("status")
        if status and status not in TICKET_STATUSES:
            raise Refused(f"Invalid Ticket Status. Valid statuses are: {','.join(TICKET_STATUSES)}")
        if status:
            ticket.status = str(status)
        if params.get("subject"):
            ticket.subject = str(params["subject"])
        return {"ticketid": str(ticket.id)}
