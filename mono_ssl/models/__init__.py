"""Networks: the AlexNet-BN trunk every probe reads."""
