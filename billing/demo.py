"""Demo data for billing: a default tariff, so demo sessions get CDRs and live cost estimates.

Idempotent: does nothing when a default tariff is already assigned (an operator's own stays).
"""

from billing import services
from billing.choices import AssignmentScope
from billing.models import TariffAssignment

DEMO_TARIFF = {
    "id": "DEMO-DEFAULT",
    "currency": "EUR",
    "elements": [
        {  # evening peak
            "price_components": [{"type": "ENERGY", "price": "0.49", "vat": "19", "step_size": 1}],
            "restrictions": {"start_time": "17:00", "end_time": "20:00"},
        },
        {
            "price_components": [
                {"type": "ENERGY", "price": "0.39", "vat": "19", "step_size": 1},
                {"type": "PARKING_TIME", "price": "6.00", "vat": "19", "step_size": 60},
            ]
        },
    ],
}


def seed(*, operator) -> None:
    if TariffAssignment.objects.filter(scope=AssignmentScope.DEFAULT).exists():
        return
    tariff = services.tariff_save_ocpi(data=DEMO_TARIFF)
    services.tariff_assign(tariff=tariff, scope=AssignmentScope.DEFAULT)
