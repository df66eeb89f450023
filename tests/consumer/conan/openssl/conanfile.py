# Stand-in for ConanCenter's openssl: Debian's libssl-dev, found by pkg-config, with the
# components (ssl, crypto) and CMake names (OpenSSL::SSL, OpenSSL::Crypto) of ConanCenter's.
from conan import ConanFile
from conan.tools.gnu import PkgConfig


class OpenSSLSystem(ConanFile):
    name = "openssl"
    package_type = "shared-library"
    settings = "os", "arch", "compiler", "build_type"

    def package_id(self):
        self.info.clear()

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "OpenSSL")
        self.cpp_info.set_property("cmake_find_mode", "both")
        crypto = self.cpp_info.components["crypto"]
        PkgConfig(self, "libcrypto").fill_cpp_info(crypto, is_system=True)
        crypto.set_property("cmake_target_name", "OpenSSL::Crypto")
        ssl = self.cpp_info.components["ssl"]
        PkgConfig(self, "libssl").fill_cpp_info(ssl, is_system=True)
        ssl.set_property("cmake_target_name", "OpenSSL::SSL")
        ssl.requires = ["crypto"]
