# `cmake --install <build> --prefix P`: the reference library and its headers, the CLI, the CUDA
# library when it was built, and a CMake package: find_package(ZImageReference) gives
# ZImageReference::reference (and ZImageReference::cuda). tests/consumer is a project built
# against such an install (tools/test-install.sh, run by CI).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ZIMAGE_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/zimage)
set_target_properties(zimage_ref PROPERTIES EXPORT_NAME reference)
install(TARGETS zimage_ref EXPORT ZImageReferenceTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/reference/ DESTINATION ${ZIMAGE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(TARGETS zimage RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(ZIMAGE_INSTALL_CUDA OFF)
if(TARGET zimage_cuda)
  set(ZIMAGE_INSTALL_CUDA ON)
  set_target_properties(zimage_cuda PROPERTIES EXPORT_NAME cuda)
  install(TARGETS zimage_cuda EXPORT ZImageReferenceTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/cuda/ DESTINATION ${ZIMAGE_INSTALL_INCLUDEDIR}/cuda
          FILES_MATCHING PATTERN "*.h")
endif()

install(EXPORT ZImageReferenceTargets NAMESPACE ZImageReference:: FILE ZImageReferenceTargets.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ZImageReference)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ZImageReferenceConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/ZImageReferenceConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ZImageReference
                              PATH_VARS CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ZImageReferenceConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ZImageReferenceConfig.cmake ${PROJECT_BINARY_DIR}/ZImageReferenceConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ZImageReference)
