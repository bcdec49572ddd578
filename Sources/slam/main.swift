print("slam")
