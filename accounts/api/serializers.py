from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import ApiKey, ApiKeyScope, IdToken, Membership, Organization, User
from accounts.scoping import ScopedPrimaryKeyRelatedField


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "kind", "created_at"]
        read_only_fields = fields


class MyMembershipSerializer(serializers.ModelSerializer):
    organization = OrganizationSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["organization", "role"]
        read_only_fields = fields


class MeSerializer(serializers.ModelSerializer):
    memberships = MyMembershipSerializer(many=True, read_only=True)
    is_operator = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "full_name",
            "is_staff",
            "is_operator",
            "date_joined",
            "last_login",
            "memberships",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField())
    def get_is_operator(self, user) -> bool:
        return self.context["actor"].is_operator


class MemberUserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name"]
        read_only_fields = fields


class MembershipSerializer(serializers.ModelSerializer):
    user = MemberUserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "organization", "role", "created_at"]
        read_only_fields = fields


class MembershipCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class IdTokenSerializer(serializers.ModelSerializer):
    effective_status = serializers.SerializerMethodField()

    class Meta:
        model = IdToken
        fields = [
            "id",
            "uid",
            "type",
            "status",
            "effective_status",
            "expires_at",
            "user",
            "organization",
            "label",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=IdToken.Status.choices))
    def get_effective_status(self, token) -> str:
        return token.effective_status()


class IdTokenCreateSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=20)
    type = serializers.ChoiceField(choices=IdToken.Type.choices, default=IdToken.Type.RFID)
    organization = ScopedPrimaryKeyRelatedField(
        queryset=Organization.objects.all(), allow_null=True, required=False, default=None
    )
    user = ScopedPrimaryKeyRelatedField(
        queryset=User.objects.all(), allow_null=True, required=False, default=None
    )
    expires_at = serializers.DateTimeField(allow_null=True, required=False, default=None)
    label = serializers.CharField(max_length=100, allow_blank=True, required=False, default="")


class ApiKeySerializer(serializers.ModelSerializer):
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "organization",
            "scopes",
            "rate_limit",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "is_active",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField())
    def get_is_active(self, api_key) -> bool:
        return api_key.is_usable()


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    organization = ScopedPrimaryKeyRelatedField(queryset=Organization.objects.all())
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKeyScope.choices), min_length=1)
    expires_at = serializers.DateTimeField(allow_null=True, required=False, default=None)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The secret key. Shown this once only.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields
