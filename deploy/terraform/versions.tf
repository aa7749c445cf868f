terraform {
  # optional() object attributes with defaults need 1.3; cross-object preconditions 1.2.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 7.0"
    }
  }
}
