"""Back office for accounts and access. Every change here is audited (``accounts.audit``)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm

from accounts import services
from accounts.models import (
    ApiCallLog,
    ApiKey,
    ApiKeyScope,
    AuditEntry,
    IdToken,
    Membership,
    Organization,
    User,
)
from accounts.scoping import Actor
from evcharge.core.admin import DeleteRefusalOnThePage


class EmailUserCreationForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class EmailUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user", "organization"]


@admin.register(User)
class UserAdmin(DeleteRefusalOnThePage, DjangoUserAdmin):
    form = EmailUserChangeForm
    add_form = EmailUserCreationForm
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "last_login", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]
    search_fields = ["email", "full_name"]
    readonly_fields = ["last_login", "date_joined"]
    inlines = [MembershipInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def user_change_password(self, request, id, form_url=""):
        # The password form saves outside save_model: record it here (the hash itself never).
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = User.objects.get(pk=id)
            services.audit_record(
                actor=request.user, action="password.set", obj=user, before=None, after=None, source="admin"
            )
        return response


@admin.register(Organization)
class OrganizationAdmin(DeleteRefusalOnThePage, admin.ModelAdmin):
    list_display = ["name", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(IdToken)
class IdTokenAdmin(DeleteRefusalOnThePage, admin.ModelAdmin):
    list_display = ["uid", "type", "status", "expires_at", "user", "organization", "label"]
    list_filter = ["status", "type", "organization"]
    search_fields = ["uid", "label", "user__email"]
    autocomplete_fields = ["user", "organization"]
    actions = ["block", "unblock"]

    @admin.action(description="Block the selected ID tokens")
    def block(self, request, queryset):
        for token in queryset:
            services.id_token_block(actor=Actor.for_user(request.user), id_token=token)
        self.message_user(request, f"Blocked {queryset.count()} ID token(s).")

    @admin.action(description="Unblock the selected ID tokens")
    def unblock(self, request, queryset):
        for token in queryset:
            services.id_token_unblock(actor=Actor.for_user(request.user), id_token=token)
        self.message_user(request, f"Unblocked {queryset.count()} ID token(s).")


class ApiKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKeyScope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "organization", "scopes", "expires_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """API keys are made by ``api_key_create``; the secret is shown once, in a message."""

    list_display = [
        "name",
        "prefix",
        "organization",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "organization__name"]
    readonly_fields = ["prefix", "scopes", "created_by", "created_at", "last_used_at", "revoked_at"]
    fields = [
        "name",
        "organization",
        "prefix",
        "scopes",
        "rate_limit",
        "expires_at",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
            kwargs["fields"] = ApiKeyAddForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        return self.fields if obj else ApiKeyAddForm.Meta.fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, key = services.api_key_create(
            actor=Actor.for_user(request.user),
            organization=form.cleaned_data["organization"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data["expires_at"],
        )
        obj.pk = api_key.pk
        obj.__dict__.update({f.attname: getattr(api_key, f.attname) for f in ApiKey._meta.concrete_fields})
        obj._state.adding = False
        messages.warning(request, f"The new API key — copy it now, it will not be shown again: {key}")

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the call log keeps pointing at the key

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            services.api_key_revoke(actor=Actor.for_user(request.user), api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} API key(s).")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiCallLog)
class ApiCallLogAdmin(ReadOnlyAdmin):
    list_display = [
        "at",
        "method",
        "path",
        "status",
        "latency_ms",
        "user",
        "api_key",
        "client_ip",
        "request_id",
    ]
    list_filter = ["method", "status", "route"]
    search_fields = ["path", "request_id", "client_ip", "user__email", "api_key__prefix"]
    date_hierarchy = "at"
    list_select_related = ["user", "api_key"]
    show_full_result_count = False  # counting millions of rows on every page view is slow


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_repr", "action", "content_type", "object_repr", "source", "request_id"]
    list_filter = ["action", "source", "content_type"]
    search_fields = ["actor_repr", "object_repr", "object_id", "request_id"]
    date_hierarchy = "at"
    readonly_fields = [
        "at",
        "actor",
        "actor_repr",
        "action",
        "content_type",
        "object_id",
        "object_repr",
        "before",
        "after",
        "source",
        "request_id",
    ]
