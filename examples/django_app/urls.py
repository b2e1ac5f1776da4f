from django.urls import path

from . import views

urlpatterns = [
    path("login", views.login_view),
    path("logout", views.logout_view),
    path("profile", views.profile),
    path("password", views.password),
    path("users/<str:username>/roles", views.roles),
    path("tokens", views.create_token),
    path("tokens/<str:tid>/refresh", views.refresh_token),
    path("tokens/<str:tid>", views.delete_token),
    path("projects/<str:project>/export", views.export),
    path("impersonate/<str:username>", views.impersonate),
    path("boom", views.boom),
]
