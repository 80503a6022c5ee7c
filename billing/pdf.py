"""Invoice PDF (reportlab): header, account, one line per CDR, VAT by rate, totals."""

from __future__ import annotations

from io import BytesIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.choices import InvoiceStatus
from evcharge.core.money import round_half_up


def render_invoice(*, invoice, lines) -> bytes:
    """The PDF bytes of an issued invoice. ``lines`` are its InvoiceLines with their CDRs."""
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, title=invoice.number, author="evcharge", leftMargin=18 * mm, rightMargin=18 * mm
    )
    styles = getSampleStyleSheet()
    account = invoice.account
    cur = invoice.currency

    def money(value) -> str:  # stored with 3 decimals; shown in the currency's minor unit
        return str(round_half_up(value, cur))

    # Rendered again after a void (the admin's action), the PDF must not look payable.
    state = "" if invoice.status == InvoiceStatus.OPEN else f" ({invoice.get_status_display().upper()})"
    story = [
        Paragraph(f"Invoice {invoice.number}{state}", styles["Title"]),
        # Paragraph text is reportlab markup: names are people's input ("Fleet <B> Nord").
        Paragraph(f"Billed to: {escape(account.name)}", styles["Normal"]),
        Paragraph(
            f"Period: {invoice.period_start:%Y-%m-%d %H:%M} - {invoice.period_end:%Y-%m-%d %H:%M} UTC "
            f"({account.get_period_display().lower()}, {escape(account.time_zone)})",
            styles["Normal"],
        ),
        Paragraph(f"Issued: {invoice.issued_at:%Y-%m-%d %H:%M} UTC", styles["Normal"]),
        Spacer(1, 6 * mm),
    ]
    rows = [
        [
            "CDR",
            "Charger",
            "Start (UTC)",
            "Stop (UTC)",
            "kWh",
            f"Excl. VAT ({cur})",
            f"VAT ({cur})",
            f"Total ({cur})",
        ]
    ]
    for line in lines:
        cdr = line.cdr
        rows.append(
            [
                str(cdr.pk),
                f"{cdr.charge_point_identity}#{cdr.connector_id}",
                f"{cdr.started_at:%Y-%m-%d %H:%M}",
                f"{cdr.stopped_at:%Y-%m-%d %H:%M}",
                f"{cdr.total_energy_kwh.normalize():f}",
                money(line.total_excl_vat),
                money(line.total_vat),
                money(line.total_incl_vat),
            ]
        )
    table = Table(rows, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
                ("ALIGN", (4, 1), (-1, -1), "RIGHT"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
            ]
        )
    )
    story += [table, Spacer(1, 6 * mm)]
    totals = [["VAT rate", "Base", "VAT"]]
    totals += [[f"{v['rate']} %", v["base"], v["amount"]] for v in invoice.vat_breakdown]
    first_total = len(totals)
    totals += [
        ["Total excl. VAT", "", f"{money(invoice.total_excl_vat)} {cur}"],
        ["VAT", "", f"{money(invoice.total_vat)} {cur}"],
        ["Total incl. VAT", "", f"{money(invoice.total_incl_vat)} {cur}"],
    ]
    if invoice.amount_credited:  # credit notes on its CDRs made before it was issued
        totals += [
            ["Credit notes", "", f"-{money(invoice.amount_credited)} {cur}"],
            ["Amount due", "", f"{money(invoice.amount_due)} {cur}"],
        ]
    summary = Table(totals, hAlign="RIGHT")
    summary.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("FONTNAME", (0, first_total + 2), (-1, first_total + 2), "Helvetica-Bold"),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("LINEABOVE", (0, first_total), (-1, first_total), 0.5, colors.grey),
            ]
        )
    )
    story.append(summary)
    doc.build(story)
    return buffer.getvalue()
