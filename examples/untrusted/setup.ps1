Start-Process app.exe

# SIG # Begin signature block
# MIIF0wYJKoZIhvcNAQcCoIIFxDCCBcACAQExDzANBglghkgBZQMEAgEFADB5Bgor
