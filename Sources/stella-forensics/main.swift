print("stella-forensics")
