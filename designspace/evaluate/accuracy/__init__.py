"""Accuracy estimates: the predicted ImageNet-1K top-1 (``top1``), the training-free proxies (``proxies``), the
estimates a search can maximize, each named for what it measures (``estimate``), and the proxies' report
(``proxy_report``)."""
