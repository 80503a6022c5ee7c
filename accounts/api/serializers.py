from rest_framework import serializers

from accounts.models import User


class MeSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name", "is_staff", "date_joined", "last_login"]
        read_only_fields = fields
