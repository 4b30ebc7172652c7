"""The password-free connect page (`PUBLIC_URL/connect/<token>`): one-time links (`links`),
their offer in Slack (`offer`), the page (`page`), its browser safety (`security`) and its
routes (`routes`)."""
