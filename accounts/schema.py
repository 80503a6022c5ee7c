"""OpenAPI: the ``Api-Key`` scheme next to JWT (drf-spectacular extension, loaded in ``ready``)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api_keys.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key evk_<prefix>_<secret>`, for partner systems; scoped per area.",
        }
