# Installs the example app.
Copy-Item -Path app.exe -Destination $env:ProgramFiles\Example
